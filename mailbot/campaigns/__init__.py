"""Statistics-form campaigns: deadlines and China's working days (`deadlines`, `workdays`:
pure), and the use case (`collecting`): returns recorded per unit, replies, reminders once
per offset, the missing list, the tally workbook."""
