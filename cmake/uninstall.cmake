# SPDX-License-Identifier: MIT
# `make uninstall`: removes every file the last `cmake --install` (or
# `make install`) of this build tree recorded in install_manifest.txt, under
# $DESTDIR if set, then the folders only OmniQ uses if they are left empty.
#
# usage: cmake -DMANIFEST=build/install_manifest.txt -P cmake/uninstall.cmake
if(NOT MANIFEST OR NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "nothing to uninstall: no install manifest at '${MANIFEST}' "
                      "(this build tree was never installed)")
endif()
file(STRINGS "${MANIFEST}" files)
set(dirs "")
foreach(file IN LISTS files)
  set(path "$ENV{DESTDIR}${file}")
  if(EXISTS "${path}" OR IS_SYMLINK "${path}")
    message(STATUS "Removing ${path}")
    file(REMOVE "${path}")
    get_filename_component(dir "${path}" DIRECTORY)
    list(APPEND dirs "${dir}")
  else()
    message(STATUS "Already gone: ${path}")
  endif()
endforeach()
# Only folders named for OmniQ (include/omniq, lib/cmake/omniq): shared ones
# such as lib/ or share/man/man1 belong to everyone.
list(REMOVE_DUPLICATES dirs)
foreach(dir IN LISTS dirs)
  get_filename_component(name "${dir}" NAME)
  file(GLOB left "${dir}/*")
  if(name STREQUAL "omniq" AND NOT left)
    message(STATUS "Removing ${dir}/")
    file(REMOVE_RECURSE "${dir}")
  endif()
endforeach()
