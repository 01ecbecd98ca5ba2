"""Results out: runs, tables, leaderboards, published numbers, exports and the HTML report."""
