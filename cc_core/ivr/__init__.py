"""IVR: prompts now; flows, validator and runtime come with the IVR issue (T6, T8, T11)."""
