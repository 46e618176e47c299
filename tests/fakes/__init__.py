"""Test doubles that behave like the real thing over real protocols (the fake HubSpot), and sample events."""
