"""Jobs: submission and state machine (service), execution (runner), durability (recovery)."""
