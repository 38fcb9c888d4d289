"""wasched.cli"""
