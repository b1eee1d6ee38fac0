"""The research-use notice every output of DVT Edge carries (reports, images, DICOM, console, web UI).

One spelling everywhere: :data:`NOTICE` in sentences and files, :data:`NOTICE_SHORT` where space is short
(the overlay's footer).
"""

NOTICE = "Research software. Not for diagnostic use."
NOTICE_SHORT = "Not for diagnostic use"
