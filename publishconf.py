"""Production settings: everything from pelicanconf.py, with the public address of the site."""

import os
import sys

sys.path.append(os.curdir)
from pelicanconf import *  # noqa: E402,F403

SITEURL = os.environ.get("SITEURL", "https://walkagain.example")
RELATIVE_URLS = False
DELETE_OUTPUT_DIRECTORY = True
ISSO_URL = os.environ.get("ISSO_URL", "")
NEWSLETTER_URL = os.environ.get("NEWSLETTER_URL", SITEURL + "/newsletter/subscribe")
