"""End-to-end tests of the planner web page in headless Chromium."""
