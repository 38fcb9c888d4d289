"""wasched.health"""
