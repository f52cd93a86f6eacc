"""The respond stage: coordinated responses to shortages, chosen jointly by a linear programme."""
