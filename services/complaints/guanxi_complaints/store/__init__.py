"""Storage of the complaints service: cases (``cases``) and the crisis counters and episodes (``crisis``),
each a protocol the handlers use, its MongoDB implementation and an in-memory fake."""

from .cases import ALIASES, CASES, COUNTERS, CaseFilter, CasePage, CaseStore, InMemoryCaseStore, MongoCaseStore
from .crisis import CRISIS, CRISIS_COUNTS, CrisisStore, Episode, InMemoryCrisisStore, MongoCrisisStore, episode_id

__all__ = ["ALIASES", "CASES", "COUNTERS", "CRISIS", "CRISIS_COUNTS", "CaseFilter", "CasePage", "CaseStore", "CrisisStore",
           "Episode", "InMemoryCaseStore", "InMemoryCrisisStore", "MongoCaseStore", "MongoCrisisStore", "episode_id"]
