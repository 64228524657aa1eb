// Behaviour for the gateway's pages. Loaded as a file: the Content-Security-Policy forbids inline script.
"use strict";
