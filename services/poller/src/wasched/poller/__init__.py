"""wasched.poller"""
