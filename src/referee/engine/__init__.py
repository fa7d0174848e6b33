"""The engine: detectors → signals → policy → decision."""

from referee.engine.decide import decide
from referee.engine.run import DecisionSink, Engine

__all__ = ["DecisionSink", "Engine", "decide"]
