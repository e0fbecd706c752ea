"""The central side: the catalog server (`shelfid catalog serve`) and the publisher behind it and `shelfid catalog publish`."""
