"""Online quality: what the system does on live traffic (shadow, experiments, prevalence, drift, the improvement loop)."""
