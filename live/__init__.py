"""Live access: Entra's changes (a disable, a group removal, revoked sign-in sessions) reach live gateway sessions
within a minute, through Microsoft Graph change notifications or, when they cannot work, a light delta poll.

Layer: above the features it joins (imports keeps the directory mirror current; sso keeps the sessions), below
the web layers (admin shows its state)."""
