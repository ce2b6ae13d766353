"""Known-hash sets and matching: exact (MD5/SHA1/SHA256) and perceptual (PDQ), negative banks, flood protection.

This package matches hashes it is given; it never hashes imagery on behalf of a report. ``filehash``
hashes an operator's own files for the ``tiptriage hash`` command.
"""
