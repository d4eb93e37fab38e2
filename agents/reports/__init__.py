"""The operator's reports: how the agents did on real conversations (stats.py) and what they could not
answer (gaps.py). Read by `/api/admin` and `mentor report`."""
