"""Administration > a data source's Office 365 pages (Users, Groups, Licences, Bulk), open to its Connection users."""

from admin.office365 import bulk, groups, licences, users  # noqa: F401  (views attach themselves to bp)
