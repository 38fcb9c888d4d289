"""wasched.sender"""
