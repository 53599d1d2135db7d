"""Agent packages loaded through AGENTS by the tests, as a team's own package would be."""
