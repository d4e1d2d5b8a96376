"""The mobile coaching API's core: the coaching and edge-model catalogs, conversation sessions, and
one coaching turn from request to kept answer."""

from gateway.coaching.catalog import CoachingCatalog, CoachingContext, load_coaching, parse_coaching
from gateway.coaching.config import MobileConfig, MobileConfigHolder, MobileFiles, load_mobile_config
from gateway.coaching.conversation import Coach
from gateway.coaching.edge_models import EdgeCatalog, EdgeModels, load_edge_models, parse_edge_models
from gateway.coaching.model_listing import ModelListing
from gateway.coaching.sessions import MemorySessionStore, RedisSessionStore, Session, SessionStore

__all__ = [
           "Coach",
           "CoachingCatalog",
           "CoachingContext",
           "EdgeCatalog",
           "EdgeModels",
           "MemorySessionStore",
           "MobileConfig",
           "MobileConfigHolder",
           "MobileFiles",
           "ModelListing",
           "RedisSessionStore",
           "Session",
           "SessionStore",
           "load_coaching",
           "load_edge_models",
           "load_mobile_config",
           "parse_coaching",
           "parse_edge_models",
]
