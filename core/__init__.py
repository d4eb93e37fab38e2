"""The ground floor every layer may import: settings and typed errors."""
