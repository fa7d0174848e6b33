"""The engine: items → the policy's plan of detectors → signals → decision → the decision log."""

from referee.engine.batcher import Batcher
from referee.engine.decide import decide
from referee.engine.run import DecisionSink, Engine

__all__ = ["Batcher", "DecisionSink", "Engine", "decide"]
