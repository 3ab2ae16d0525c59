"""A small billing portal ("Acme Billing") used as a demo and test target."""

from runtime.demo.portal.app import create_app
from runtime.demo.portal.data import USERS, totp_code
from runtime.demo.portal.server import PortalServer

__all__ = ["USERS", "PortalServer", "create_app", "totp_code"]
