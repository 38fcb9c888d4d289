"""wasched.common"""
