"""Every LeadFlow deployment, served from one process for the embedded default (`leadflow serve`)."""
