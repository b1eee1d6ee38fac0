"""CT venography: slice-streaming DVT candidate detection (research software, not for diagnostic use)."""
