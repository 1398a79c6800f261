"""The retail API, one router per area."""
