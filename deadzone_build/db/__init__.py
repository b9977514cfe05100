"""Db stage: `deadzone.db`'s schema, its writer (`consolidate`) and its readers (`search`, `pull`)."""
