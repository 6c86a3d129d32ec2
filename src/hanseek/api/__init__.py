"""HTTP API: app factory, one router per feature, problem+json errors."""
