"""What the decision log becomes as evidence and as work: human review and appeals,
the tamper-evident chain, statements of reasons, transparency reports, retention."""
