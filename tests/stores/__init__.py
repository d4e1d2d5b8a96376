"""Key and limit stores, each test against memory and a real Redis."""
