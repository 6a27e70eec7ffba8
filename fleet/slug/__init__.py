"""Slug compilation: Procfile and .slugignore rules, source checks, the build container."""
