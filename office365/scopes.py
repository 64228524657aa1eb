"""The delegated Graph permissions each operation accepts (any one of a tuple will do; docs/microsoft.md §5.10).

One home for them so operation modules do not import each other for a constant.
"""

GROUP_READ_SCOPES = ("Group.Read.All", "GroupMember.Read.All", "Group.ReadWrite.All", "Directory.Read.All")
MEMBER_WRITE_SCOPES = ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")
SKU_READ_SCOPES = ("Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All")
USER_WRITE_SCOPES = ("User.ReadWrite.All", "Directory.ReadWrite.All")
LICENCE_WRITE_SCOPES = ("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
