"""The event bus: ``publish`` a company's event, ``subscribe`` to a company's feed, and
``replay`` what a reconnecting client missed. In process by default (memory.py); through
Redis when configured (redis_bus.py), so that every node sees every node's events."""

from nuage.events.bus import REPLAY_LIMIT, Event, EventBus, Subscription, SubscriptionLost

__all__ = ["REPLAY_LIMIT", "Event", "EventBus", "Subscription", "SubscriptionLost"]
