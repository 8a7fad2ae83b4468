"""The old name of models.hparams, kept for model files written against it: ``from models.config import ExpertConfig``."""
from models.hparams import *  # noqa: F401,F403
