"""Test-time methods: exact AdaBN, batch statistics, TENT and stain normalisation."""
