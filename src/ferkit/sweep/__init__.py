"""`ferkit sweep`: a plan of trainings (seeds, recipes, distillation from earlier runs) as Ray tasks."""
