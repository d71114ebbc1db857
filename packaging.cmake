# packaging.cmake: install rules for everything around the two binaries (systemd unit,
# sysusers.d and tmpfiles.d files, example configuration, man pages, documentation) and the
# CPack set-up behind `cmake --build <dir> --target package`, which builds a .deb.
# Included from the top-level CMakeLists.txt after daemon/ and cli/ (they install the binaries).
#
# Paths below are relative to the install prefix, except /etc/pacs2xnat, which is where the
# unit's ExecStart reads the configuration. systemd finds units, sysusers.d and tmpfiles.d files
# under /usr/lib and /usr/local/lib, so the prefixes that work are /usr (the .deb) and /usr/local
# (`cmake --install <dir>`). After `cmake --install`, run what the .deb's postinst runs:
#   systemd-sysusers pacs2xnat.conf && systemd-tmpfiles --create pacs2xnat.conf &&
#   systemctl daemon-reload

set(P2X_PACKAGE_MAINTAINER "pacs2xnat maintainers <root@localhost>"
    CACHE STRING "Maintainer field of the .deb (name <email>)")

# Man pages from templates plus the programs' own --help text.
set(p2x_man_dir ${PROJECT_BINARY_DIR}/man)
set(p2x_man_pages)
foreach(page IN ITEMS "pacs2xnatd;8" "pacs2xnat;1")
  list(GET page 0 p2x_prog)
  list(GET page 1 p2x_section)
  if(NOT TARGET ${p2x_prog})
    continue()
  endif()
  set(p2x_out ${p2x_man_dir}/man${p2x_section}/${p2x_prog}.${p2x_section})
  set(p2x_template ${CMAKE_CURRENT_LIST_DIR}/cmake/man/${p2x_prog}.${p2x_section}.in)
  add_custom_command(
    OUTPUT ${p2x_out}
    COMMAND ${CMAKE_COMMAND} -DP2X_BIN=$<TARGET_FILE:${p2x_prog}> -DP2X_TEMPLATE=${p2x_template}
            -DP2X_OUT=${p2x_out} -DP2X_VERSION=${PROJECT_VERSION}
            -P ${CMAKE_CURRENT_LIST_DIR}/cmake/manpage.cmake
    DEPENDS ${p2x_prog} ${p2x_template} ${CMAKE_CURRENT_LIST_DIR}/cmake/manpage.cmake
    COMMENT "Generating man page ${p2x_prog}(${p2x_section})"
    VERBATIM)
  list(APPEND p2x_man_pages ${p2x_out})
  install(FILES ${p2x_out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${p2x_section})
endforeach()
add_custom_target(p2x_man ALL DEPENDS ${p2x_man_pages})

# systemd: the unit (ExecStart rewritten to the installed daemon), the user, the directories.
install(CODE "
  set(P2X_UNIT_SRC \"${CMAKE_CURRENT_LIST_DIR}/systemd/pacs2xnatd.service\")
  set(P2X_UNIT_TMP \"${PROJECT_BINARY_DIR}/packaging/pacs2xnatd.service\")
  set(P2X_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/cmake/install-unit.cmake\")
")
install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/pacs2xnat.sysusers
        DESTINATION lib/sysusers.d RENAME pacs2xnat.conf)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/pacs2xnat.tmpfiles
        DESTINATION lib/tmpfiles.d RENAME pacs2xnat.conf)

# Configuration example next to where the real file goes, and the documentation.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/config/pacs2xnat.example.json
        DESTINATION /etc/pacs2xnat RENAME pacs2xnat.json.example)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_CURRENT_LIST_DIR}/config/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME configuration.md)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/config/studies.example.csv
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# CPack: one .deb named pacs2xnat. DESTDIR staging keeps CMAKE_INSTALL_PREFIX at /usr during
# packaging, so the unit's ExecStart says /usr/sbin/pacs2xnatd and /etc stays /etc.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pacs2xnat)
set(CPACK_PACKAGE_VENDOR pacs2xnat)
set(CPACK_PACKAGE_CONTACT "${P2X_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "bulk DICOM import from a PACS into XNAT")
set(CPACK_PACKAGE_DESCRIPTION
    "pacs2xnatd imports the studies listed in a CSV from a hospital PACS into XNAT: it queries \
the PACS (C-FIND), retrieves each study (C-MOVE into its own Storage SCP, or C-GET) within the \
PACS's association limit, checks completeness, uploads to XNAT and verifies the upload. Its \
SQLite job store survives crashes and restarts. pacs2xnat is the command line to submit and \
follow jobs. Runs as a systemd service (Type=notify, watchdog) as the pacs2xnat user.")
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers and systemd-tmpfiles run from postinst; --offline security and the unit's
# settings need systemd 247 or later (Debian 12 has 252).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 247)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/cmake/deb/postinst
    ${CMAKE_CURRENT_LIST_DIR}/cmake/deb/prerm
    ${CMAKE_CURRENT_LIST_DIR}/cmake/deb/postrm
    ${CMAKE_CURRENT_LIST_DIR}/cmake/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
