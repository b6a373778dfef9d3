"""Generated from proto/ by scripts/codegen.sh. Do not edit."""
