#include "meter/journal.h"
void tg_journal_settle(tg_journal *j, const tg_jticket *t) { (void)j; (void)t; }
