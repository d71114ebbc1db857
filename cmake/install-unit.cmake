# install-unit.cmake: installs systemd/pacs2xnatd.service with ExecStart pointing at the daemon
# under the prefix being installed to. Runs at install time (install(CODE) in packaging.cmake),
# where CMAKE_INSTALL_PREFIX is final: /usr for the .deb, --prefix for `cmake --install`.
# Inputs: P2X_UNIT_SRC (the unit), P2X_UNIT_TMP (scratch file), P2X_SBINDIR (GNUInstallDirs).
if(IS_ABSOLUTE "${P2X_SBINDIR}")
  set(p2x_sbin "${P2X_SBINDIR}")
else()
  set(p2x_sbin "${CMAKE_INSTALL_PREFIX}/${P2X_SBINDIR}")
endif()
file(READ "${P2X_UNIT_SRC}" p2x_unit)
set(p2x_from "\nExecStart=/usr/sbin/pacs2xnatd ")
string(FIND "${p2x_unit}" "${p2x_from}" p2x_at)
if(p2x_at EQUAL -1)
  message(FATAL_ERROR "${P2X_UNIT_SRC}: no 'ExecStart=/usr/sbin/pacs2xnatd ' line to rewrite")
endif()
string(REPLACE "${p2x_from}" "\nExecStart=${p2x_sbin}/pacs2xnatd " p2x_unit "${p2x_unit}")
file(WRITE "${P2X_UNIT_TMP}" "${p2x_unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${P2X_UNIT_TMP}")
