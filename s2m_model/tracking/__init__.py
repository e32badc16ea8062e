"""Multi-person tracking: stable ids for the people a detector finds frame after frame."""
