"""Review: applies the review policy and opens one lessons-learned record per closed incident."""
