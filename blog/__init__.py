"""The blog's build, serve and publish steps, called by tasks.py (Pelican does the real work)."""
