"""The three-stage W-HMR trainer (DESIGN.md section 7): configs, stage rules, objective, loop."""
