"""Policy-as-code: the YAML taxonomy, rules and tests that turn signals into decisions."""

from referee.policy.load import Policy, Problem, load_policy
from referee.policy.schema import Category, PolicyDocument, PolicyTest, Rule

__all__ = ["Category", "Policy", "PolicyDocument", "PolicyTest", "Problem", "Rule", "load_policy"]
