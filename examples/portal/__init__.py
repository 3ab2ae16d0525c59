"""A small billing portal ("Acme Billing") used as a demo and test target."""

from examples.portal.app import create_app
from examples.portal.data import USERS, totp_code
from examples.portal.server import PortalServer

__all__ = ["USERS", "PortalServer", "create_app", "totp_code"]
