"""The dashboard's pages (Dash discovers them by file; this file makes them a package that
import-linter and packaging can see)."""
