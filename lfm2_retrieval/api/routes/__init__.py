"""The endpoints, one router per concern; each reads what it serves from `app.state` (state.py)."""
