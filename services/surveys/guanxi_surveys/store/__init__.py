"""Storage of the surveys service: ``SurveyStore`` (what the use cases need), ``MongoSurveyStore`` on
MongoDB and ``InMemorySurveyStore`` for the fast tests."""

from .memory import InMemorySurveyStore
from .mongo import CUSTOMERS, SKIPS, SURVEYS, MongoSurveyStore
from .protocol import Announcer, Change, Doc, SurveyStore

__all__ = ["CUSTOMERS", "SKIPS", "SURVEYS", "Announcer", "Change", "Doc", "InMemorySurveyStore", "MongoSurveyStore",
           "SurveyStore"]
