"""The web app and REST API (`ferkit serve`): see ferkit.web.app."""
