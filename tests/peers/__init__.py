"""Drivers for real SIP peers (sipp, baresip) and audio checks for the test suite."""
