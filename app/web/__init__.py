"""The web server `goldsmith serve` runs: Streamlit's own, with Goldsmith's session route (asgi.py)."""
